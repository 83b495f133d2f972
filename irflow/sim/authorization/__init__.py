"""Microsoft.Authorization: role definitions (Azure's built-in ones) and role assignments at any scope."""
