from irflow.azure.clients import AzureClients, CloudEndpoints, ConfigurationError, resolve_endpoints

__all__ = ["AzureClients", "CloudEndpoints", "ConfigurationError", "resolve_endpoints"]
