from irflow.audit.chain import GENESIS_HASH, AuditChain, ChainReport, canonical_json

__all__ = ["GENESIS_HASH", "AuditChain", "ChainReport", "canonical_json"]
