"""irflow: incident-response orchestrator for PHI breaches on Azure."""

__version__ = "0.1.0"
