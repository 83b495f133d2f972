"""Microsoft.Storage: storage accounts, their blob service and containers (models, wire handlers, routes)."""
