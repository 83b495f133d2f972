# irflow service image: API + dashboard + engine worker (`irflow serve`).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY irflow ./irflow
RUN pip install --no-cache-dir --upgrade pip \
 && pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    IRFLOW_DATABASE_URL=sqlite:////var/lib/irflow/irflow.db \
    IRFLOW_PLAYBOOKS_DIR=/opt/irflow/playbooks \
    IRFLOW_TEMPLATES_DIR=/opt/irflow/notifications \
    IRFLOW_LOG_FORMAT=json
RUN groupadd --system --gid 10001 irflow \
 && useradd --system --uid 10001 --gid irflow --home-dir /var/lib/irflow --create-home irflow
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY playbooks /opt/irflow/playbooks
COPY notifications /opt/irflow/notifications
USER irflow
WORKDIR /var/lib/irflow
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"
ENTRYPOINT ["irflow", "serve"]
CMD ["--host", "0.0.0.0", "--port", "8080"]
