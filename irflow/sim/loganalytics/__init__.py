"""Log Analytics (Azure Monitor Logs): workspaces of log tables and the query API, with a KQL subset."""
