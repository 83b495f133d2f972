"""Azure Monitor (Microsoft.Insights): diagnostic settings of storage blob services and key vaults."""
