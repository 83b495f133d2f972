"""Microsoft.Storage: storage accounts (model, wire handlers, routes)."""
