# syntax=docker/dockerfile:1
# MLflow 3.17.2 tracking server with the Postgres driver and boto3 for S3 (MinIO) artifacts. Build context is
# docker/ (nothing is copied from it). docker-compose.yml passes the flags; see docker/README.md. Never built on
# the machine this was written on.
FROM python:3.11-slim-bookworm

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# mlflow is pinned like tests/requirements.txt (3.18.0's mlflow-skinny is missing from the mirror, see
# ../shared/mlflow-notes.md); psycopg2-binary and boto3 are pinned to the versions the index listed when this
# was written. Only the full `mlflow` package can run `mlflow server`.
RUN pip install mlflow==3.17.2 psycopg2-binary==2.9.13 boto3==1.44.5 \
 && useradd --system --uid 10001 --user-group --create-home --home-dir /home/mlflow --shell /usr/sbin/nologin mlflow

# No telemetry DNS lookups; no job runner (it serves GenAI/scorer jobs only and starts its own worker processes).
ENV MLFLOW_DISABLE_TELEMETRY=true \
    MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false

USER mlflow
WORKDIR /home/mlflow
EXPOSE 5000
# The backend store comes from MLFLOW_BACKEND_STORE_URI (the envvar of --backend-store-uri in MLflow 3.17.2), so
# the database password stays out of the process arguments. Without it MLflow uses sqlite:///mlflow.db here.
ENTRYPOINT ["mlflow", "server"]
CMD ["--host", "0.0.0.0", "--port", "5000", "--workers", "2"]
