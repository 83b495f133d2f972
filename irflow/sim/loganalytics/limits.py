"""The Log Analytics query API's result limits, and the partial result Azure answers past them.

"Query API: Maximum records returned in a single query: 500,000. Maximum size of data returned: ~104 MB
(~100 MiB); the API returns up to 64 MB of compressed data. Maximum query running time: 10 minutes."
(https://learn.microsoft.com/azure/azure-monitor/fundamentals/service-limits#la-query-api). Past a limit the
service still answers 200 with the rows that fit and an ``error`` (``PartialError``) next to ``tables``; the
SDK surfaces it as ``LogsQueryPartialResult`` (azure-monitor-query, ``LogsQueryStatus.PARTIAL``). The Kusto
engine names the limit in the inner error ("Query result set has exceeded the internal record count limit
500000 (E_QUERY_RESULT_SET_TOO_LARGE; see https://aka.ms/kustoquerylimits)";
https://learn.microsoft.com/azure/data-explorer/kusto/concepts/query-limits#limit-on-result-set-size-result-truncation).

The simulator measures the size on the uncompressed JSON of the rows and applies 64 MiB to it: stricter than
Azure's 64 MB compressed. A query's running time is ``LogAnalytics.query_seconds`` (simulated; 0 by default):
past 10 minutes the answer is partial with no rows.
"""

from __future__ import annotations

import json
from typing import Any

MAX_RECORDS = 500_000
MAX_BYTES = 64 * 1024 * 1024
MAX_SECONDS = 600.0


def _partial(inner_code: str, message: str) -> dict[str, Any]:
    return {
        "code": "PartialError",
        "message": "There were some errors when processing your query.",
        "details": [
            {
                "code": "EngineError",
                "message": "Something went wrong processing your query on the server.",
                "innererror": {
                    "code": inner_code,
                    "message": message,
                    "severity": 2,
                    "severityName": "Error",
                },
            }
        ],
    }


def apply(
    answer: dict[str, Any],
    *,
    max_records: int = MAX_RECORDS,
    max_bytes: int = MAX_BYTES,
    seconds: float = 0.0,
    max_seconds: float = MAX_SECONDS,
) -> dict[str, Any]:
    """``answer`` (``{"tables": [...]}``) cut to the limits, with the partial ``error`` when it was cut."""
    table = answer["tables"][0]
    rows = table["rows"]
    if seconds > max_seconds:
        table["rows"] = []
        answer["error"] = _partial(
            "-2133196798",
            f"Query execution has exceeded the allowed limits (the maximum query running time is "
            f"{int(max_seconds // 60)} minutes)",
        )
        return answer
    if len(rows) > max_records:
        table["rows"] = rows[:max_records]
        answer["error"] = _partial(
            "-2133196797",
            f"Query result set has exceeded the internal record count limit {max_records} "
            "(E_QUERY_RESULT_SET_TOO_LARGE; see https://aka.ms/kustoquerylimits)",
        )
        rows = table["rows"]
    size, kept = 0, 0
    for row in rows:
        size += len(json.dumps(row, separators=(",", ":"), default=str)) + 1
        if size > max_bytes:
            break
        kept += 1
    if kept < len(rows):
        table["rows"] = rows[:kept]
        answer["error"] = _partial(
            "-2133196797",
            f"Query result set has exceeded the internal data size limit {max_bytes} "
            "(E_QUERY_RESULT_SET_TOO_LARGE; see https://aka.ms/kustoquerylimits)",
        )
    return answer
