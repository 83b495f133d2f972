from irflow.audit.chain import GENESIS_HASH, AuditChain, ChainReport, canonical_json, defer_appends

__all__ = ["GENESIS_HASH", "AuditChain", "ChainReport", "canonical_json", "defer_appends"]
