"""irflow.logs: what is actually rendered, in JSON and on the console, carries no secret and no PHI."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import random
import sys
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import structlog
from azure.core.pipeline import PipelineContext, PipelineRequest
from azure.core.pipeline.policies import HttpLoggingPolicy, NetworkTraceLoggingPolicy
from azure.core.rest import HttpRequest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from irflow import clock
from irflow.logs import NOISY_LOGGERS, bind_context, configure_logging, get_logger
from irflow.redaction import fingerprint
from irflow.settings import reset_settings_cache

_rng = random.Random(7)
ACCOUNT_KEY = base64.b64encode(_rng.randbytes(64)).decode()
SAS_SIG = (
    base64.b64encode(_rng.randbytes(32)).decode().replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
)
OPAQUE_TOKEN = base64.urlsafe_b64encode(_rng.randbytes(36)).decode().rstrip("=")
JWT = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhYmMiLCJ0aWQiOiJ4eXoifQ.c2lnbmF0dXJlLXBhcnQ"
ARM_ID = (
    "/subscriptions/0b1f6471-1bf0-4dda-aec3-cb9272f09590/resourceGroups/rg-phi-prod"
    "/providers/Microsoft.Storage/storageAccounts/phistore01"
)
GUID = "550E8400-E29B-41D4-A716-446655440000"
SHA256 = hashlib.sha256(b"evidence").hexdigest()
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
NOW_TEXT = "2024-05-01T12:00:00.000000Z"

# kind -> (the raw value that must never be rendered, a sentence that carries it)
SAMPLES = {
    "sas-sig": (
        SAS_SIG,
        f"copy from https://phistore01.blob.core.windows.net/exports?sv=2024-08-04&sig={SAS_SIG}",
    ),
    "account-key": (ACCOUNT_KEY, f"listKeys gave {ACCOUNT_KEY}"),
    "connection-string": (ACCOUNT_KEY, f"AccountName=phistore01;AccountKey={ACCOUNT_KEY};EndpointSuffix=x"),
    "base64-secret": (OPAQUE_TOKEN, f"vault secret value {OPAQUE_TOKEN}"),
    "bearer": (OPAQUE_TOKEN, f"Authorization: Bearer {OPAQUE_TOKEN}"),
    "jwt": (JWT, f"token {JWT}"),
    "url-password": (
        "Pg-s3cret!",
        "connecting to postgresql+psycopg://irflow:Pg-s3cret!@db.internal:5432/irflow",
    ),
    "password-pair": ("hunter2hunter2", "login failed for password=hunter2hunter2"),
    "ssn": ("123-45-6789", "patient SSN 123-45-6789 in blob"),
    "ssn-labelled": ("078051120", "ssn: 078051120"),
    "mrn": ("MRN-7654321", "record MRN-7654321 exported"),
    "dob": ("1980-02-29", "DOB: 1980-02-29"),
    "email": ("alice.smith@example.org", "notify alice.smith@example.org"),
    "phone": ("(555) 123-4567", "call (555) 123-4567"),
    "phone-dotted": ("555.123.4567", "call 555.123.4567"),
}


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Each test configures logging its own way; put back what was there, and a fixed clock meanwhile."""
    root = logging.getLogger()
    watched = [root, *(logging.getLogger(name) for name in NOISY_LOGGERS)]
    saved = [(lg, lg.level, list(lg.handlers), lg.propagate) for lg in watched]
    config = structlog.get_config()
    previous_clock = clock.install(clock.FrozenClock(NOW))
    structlog.contextvars.clear_contextvars()
    yield
    clock.install(previous_clock)
    structlog.contextvars.clear_contextvars()
    structlog.configure(**config)
    for lg, level, handlers, propagate in saved:
        lg.handlers[:] = handlers
        lg.setLevel(level)
        lg.propagate = propagate


def capture(fmt: str = "json", level: str = "INFO") -> io.StringIO:
    stream = io.StringIO()
    configure_logging(level=level, fmt=fmt, stream=stream)
    return stream


def json_lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def log_everywhere(sentence: str) -> None:
    """Log one sentence every way a value can reach a log line."""
    log = get_logger("irflow.test")
    log.info(sentence)
    log.info("positional %s", sentence)
    log.warning("as a field", detail=sentence, nested={"items": [("step", {"message": sentence})]})
    try:
        try:
            raise KeyError(sentence)
        except KeyError as inner:
            raise RuntimeError(f"step failed: {sentence}") from inner
    except RuntimeError:
        log.exception("step crashed")
    logging.getLogger("azure.core.pipeline.policies.http_logging_policy").warning("%s", sentence)
    try:
        raise ValueError(sentence)
    except ValueError:
        logging.getLogger("dbos").error("workflow failed", exc_info=True)
    with bind_context(target=sentence):
        log.info("with context")


# --- format ---------------------------------------------------------------------------------------


def test_json_is_one_object_per_line_with_the_standard_fields() -> None:
    stream = capture("json")
    log = get_logger("irflow.engine")
    log.info("first line\nsecond line", count=3)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("failed")
    logging.getLogger("urllib3").warning("pool full")
    lines = json_lines(stream)
    assert len(lines) == len(stream.getvalue().splitlines()) == 3
    assert [(e["level"], e["logger"], e["event"]) for e in lines] == [
        ("info", "irflow.engine", "first line\nsecond line"),
        ("error", "irflow.engine", "failed"),
        ("warning", "urllib3", "pool full"),
    ]
    assert all(e["timestamp"] == NOW_TEXT for e in lines)
    assert list(lines[0])[:4] == ["timestamp", "level", "logger", "event"]
    assert lines[0]["count"] == 3
    assert "Traceback (most recent call last)" in str(lines[1]["exception"])
    assert "RuntimeError: boom" in str(lines[1]["exception"])


def test_get_logger_is_named_after_the_calling_module() -> None:
    stream = capture("json")
    get_logger().info("hello")
    assert json_lines(stream)[0]["logger"] == __name__


def test_console_format_is_human_readable() -> None:
    stream = capture("console")
    get_logger("irflow.cli").info("run started", run_id="r-1")
    line = stream.getvalue()
    assert line.startswith(NOW_TEXT) and "run started" in line and "run_id=r-1" in line
    assert "\x1b[" not in line, "no colours when the stream is not a terminal"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_auto_is_console_on_a_terminal_and_json_elsewhere() -> None:
    terminal = _Terminal()
    configure_logging(level="INFO", fmt="auto", stream=terminal)
    get_logger("irflow").info("hi")
    assert "hi" in terminal.getvalue()
    with pytest.raises(json.JSONDecodeError):
        json.loads(terminal.getvalue())

    stream = capture("auto")
    get_logger("irflow").info("hi")
    assert json_lines(stream)[0]["event"] == "hi"


def test_defaults_come_from_settings_and_go_to_stderr(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IRFLOW_LOG_LEVEL", "warning")
    monkeypatch.setenv("IRFLOW_LOG_FORMAT", "json")
    reset_settings_cache()
    configure_logging()
    get_logger("irflow").info("not shown")
    get_logger("irflow").warning("shown", password="hunter2")
    out, err = capsys.readouterr()
    assert out == ""
    assert [json.loads(line)["event"] for line in err.splitlines()] == ["shown"]
    assert "hunter2" not in err


def test_reconfiguring_replaces_the_previous_configuration() -> None:
    first = capture("json")
    capture("json")
    second = capture("json")
    get_logger("irflow").info("once")
    assert first.getvalue() == ""
    assert len(json_lines(second)) == 1
    assert (
        sum(
            1
            for h in logging.getLogger().handlers
            if isinstance(h.formatter, structlog.stdlib.ProcessorFormatter)
        )
        == 1
    )


def test_a_plain_console_handler_is_replaced(capsys: pytest.CaptureFixture[str]) -> None:
    logging.getLogger().addHandler(logging.StreamHandler(sys.stderr))  # what logging.basicConfig() adds
    stream = capture("json")
    logging.getLogger("sqlalchemy.engine").warning("connecting with password=hunter2hunter2")
    assert "hunter2hunter2" not in capsys.readouterr().err
    assert json_lines(stream)[0]["event"] == "connecting with password=***"


def test_rejects_an_unknown_level_or_format() -> None:
    with pytest.raises(ValueError, match="level"):
        configure_logging(level="LOUD", fmt="json", stream=io.StringIO())
    with pytest.raises(ValueError, match="format"):
        configure_logging(level="INFO", fmt="xml", stream=io.StringIO())


# --- context --------------------------------------------------------------------------------------


def test_context_ids_appear_on_every_line_and_are_restored() -> None:
    stream = capture("json")
    log = get_logger("irflow.engine")
    with bind_context(incident_id="INC-2024-0007", run_id=GUID.lower()):
        with bind_context(step_id="revoke-sas", target=ARM_ID):
            log.info("step started")
            logging.getLogger("dbos").warning("step retried")
        with bind_context(step_id="forensics"):
            log.info("next step")
        log.info("run finished")
        assert structlog.contextvars.get_contextvars() == {
            "incident_id": "INC-2024-0007",
            "run_id": GUID.lower(),
        }
    log.info("outside")
    assert structlog.contextvars.get_contextvars() == {}

    ids = [{k: e.get(k) for k in ("incident_id", "run_id", "step_id", "target")} for e in json_lines(stream)]
    run = {"incident_id": "INC-2024-0007", "run_id": GUID.lower()}
    assert ids == [
        {**run, "step_id": "revoke-sas", "target": ARM_ID},
        {**run, "step_id": "revoke-sas", "target": ARM_ID},
        {**run, "step_id": "forensics", "target": None},
        {**run, "step_id": None, "target": None},
        {"incident_id": None, "run_id": None, "step_id": None, "target": None},
    ]


# --- redaction ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "console"])
@pytest.mark.parametrize("kind", SAMPLES)
def test_no_secret_or_phi_reaches_the_output(fmt: str, kind: str) -> None:
    raw, sentence = SAMPLES[kind]
    stream = capture(fmt)
    log_everywhere(sentence)
    output = stream.getvalue()
    assert output.count("Traceback (most recent call last)") == 3, "the chained and the stdlib tracebacks"
    assert "KeyError" in output and "ValueError" in output
    assert raw not in output
    if fmt == "json":
        assert len(json_lines(stream)) == 7


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_fields_named_like_secrets_or_phi_are_masked_whole(fmt: str) -> None:
    stream = capture(fmt)
    get_logger("irflow.actions").info(
        "key rotated",
        account_key="c2hvcnQ=",
        sas_token="sv=2024&sp=r",
        credential={"tenant": "t", "client_secret": "abc"},
        patient={"first_name": "Ann", "dob": "1970-01-01", "ssn": 123456789, "mrn": "0042"},
        old_key=fingerprint(ACCOUNT_KEY),
    )
    output = stream.getvalue()
    for raw in ("c2hvcnQ", "sv=2024", "abc", "Ann", "1970-01-01", "123456789", "0042"):
        assert raw not in output
    assert fingerprint(ACCOUNT_KEY) in output
    if fmt == "json":
        (line,) = json_lines(stream)
        assert line["account_key"] == "***" and line["credential"] == "***"
        assert line["patient"] == {
            "first_name": "[REDACTED:name]",
            "dob": "[REDACTED:dob]",
            "ssn": "[REDACTED:ssn]",
            "mrn": "[REDACTED:mrn]",
        }


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_ids_timestamps_and_fingerprints_survive(fmt: str) -> None:
    stream = capture(fmt)
    sentence = (
        f"isolated {ARM_ID} request {GUID} at 2024-05-01T11:59:59.5Z from 10.1.2.3:443 "
        f"status 409 evidence sha256:{SHA256} key {fingerprint(ACCOUNT_KEY)}"
    )
    get_logger("irflow.actions").info(sentence, target=ARM_ID, status=429)
    logging.getLogger("azure").warning(sentence)
    output = stream.getvalue()
    assert output.count(sentence) == 2
    assert output.count(ARM_ID) == 3


def test_azure_http_logging_is_redacted_even_at_debug() -> None:
    """azure-core's own policies, as the SDK runs them: NetworkTraceLoggingPolicy prints every header."""
    stream = capture("json", level="DEBUG")
    request = HttpRequest(
        "POST",
        f"https://phistore01.blob.core.windows.net/exports/a.csv?sv=2024-08-04&sig={SAS_SIG}",
        headers={"Authorization": f"Bearer {JWT}", "x-ms-client-request-id": GUID},
        json={"password": "hunter2hunter2", "patient": {"email": "alice@example.org"}},
    )
    NetworkTraceLoggingPolicy(logging_enable=True).on_request(PipelineRequest(request, PipelineContext(None)))
    HttpLoggingPolicy().on_request(PipelineRequest(request, PipelineContext(None)))
    logging.getLogger("azure.core.pipeline.policies.http_logging_policy").warning(
        f"Authorization: Bearer {JWT}"
    )
    lines = json_lines(stream)
    output = stream.getvalue()
    assert [e["logger"] for e in lines] == [
        "azure.core.pipeline.policies._universal",
        "azure.core.pipeline.policies.http_logging_policy",
        "azure.core.pipeline.policies.http_logging_policy",
    ]
    for raw in (SAS_SIG, JWT[:12], "hunter2hunter2", "alice@example.org"):
        assert raw not in output
    assert "'Authorization': '***'" in str(lines[0]["event"]) and GUID in str(lines[0]["event"])
    assert lines[2]["event"] == "Authorization: ***"


def test_noisy_libraries_are_quiet_below_warning_unless_debug() -> None:
    stream = capture("json", level="INFO")
    for name in NOISY_LOGGERS:
        logging.getLogger(f"{name}.sub").info("chatter")
        logging.getLogger(f"{name}.sub").warning("trouble")
    get_logger("irflow").info("ours")
    assert [e["event"] for e in json_lines(stream)] == ["trouble"] * len(NOISY_LOGGERS) + ["ours"]

    stream = capture("json", level="DEBUG")
    logging.getLogger("azure.core").debug("detail")
    assert [e["event"] for e in json_lines(stream)] == ["detail"]


def test_dbos_logs_through_the_same_handler_once() -> None:
    dbos = logging.getLogger("dbos")
    own = logging.StreamHandler(io.StringIO())
    own.name = "__dbos_console_log_handler__"
    dbos.addHandler(own)
    stream = capture("json")
    assert own not in dbos.handlers and not dbos.propagate
    dbos.warning("recovering workflow for %s", "alice@example.org")
    assert json_lines(stream) == [
        {
            "timestamp": NOW_TEXT,
            "level": "warning",
            "logger": "dbos",
            "event": "recovering workflow for [REDACTED:email]",
        }
    ]


def test_values_that_are_not_plain_data_are_logged_as_redacted_text() -> None:
    class Url:
        def __str__(self) -> str:
            return f"https://a.blob.core.windows.net/c?sig={SAS_SIG}"

    class Broken:
        def __str__(self) -> str:
            raise RuntimeError("no")

    stream = capture("json")
    get_logger("irflow").info("odd values", url=Url(), broken=Broken(), when=NOW, pair={(1, 2): "x"})
    (line,) = json_lines(stream)
    assert line["url"] == "https://a.blob.core.windows.net/c?sig=***"
    assert line["broken"] == "<unprintable Broken>"
    assert line["when"] == str(NOW)


def test_a_record_that_cannot_be_rendered_is_not_printed_raw(capsys: pytest.CaptureFixture[str]) -> None:
    stream = capture("json")
    root = logging.getLogger()
    # pytest's own capture handler turns logging errors into test failures: leave only ours.
    root.handlers[:] = [
        h for h in root.handlers if isinstance(h.formatter, structlog.stdlib.ProcessorFormatter)
    ]
    logging.getLogger("thirdparty").warning("%s and %s", "password=hunter2hunter2")  # one argument short
    assert "could not be rendered" in stream.getvalue()
    assert "hunter2hunter2" not in stream.getvalue() + "".join(capsys.readouterr())


@settings(
    max_examples=60,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    before=st.text("abcdefghij ,.:", max_size=20),
    value=st.one_of(
        st.from_regex(r"\d{3}-\d{2}-\d{4}", fullmatch=True),
        st.from_regex(
            r"\(\d{3}\) \d{3}-\d{4}|\d{3}-\d{3}-\d{4}|\+1 \d{3} \d{3} \d{4}|\d{3}\.\d{3}\.\d{4}",
            fullmatch=True,
        ),
        st.emails(),
    ),
)
def test_generated_phi_never_reaches_the_rendered_json(before: str, value: str) -> None:
    stream = capture("json")
    sentence = f"{before} {value} end"
    get_logger("irflow").info(sentence, detail=sentence)
    logging.getLogger("azure").warning(sentence)
    assert value not in stream.getvalue()
    assert len(json_lines(stream)) == 2


def test_database_loggers_stay_quiet_even_at_debug() -> None:
    """SQLAlchemy prints parameters and rows (notice bodies, names) below WARNING: never let them through."""
    import io
    import logging

    from irflow.logs import configure_logging

    stream = io.StringIO()
    configure_logging(level="DEBUG", fmt="json", stream=stream)
    try:
        logging.getLogger("sqlalchemy.engine.Engine").info("[generated] ('Jane Q. Patient', '1984-02-03')")
        logging.getLogger("irflow.test").debug("irflow debug still shows")
    finally:
        configure_logging(level="INFO", fmt="json")
    output = stream.getvalue()
    assert "Jane Q. Patient" not in output and "irflow debug still shows" in output
