# The sharehub image: one image, three roles (governance bootstrap, projection worker, query API).
FROM python:3.11-slim
WORKDIR /opt/sharehub
COPY pyproject.toml uv.lock README.md ./
COPY scripts/uv-requirements.txt ./scripts/
COPY sharehub ./sharehub
COPY connectors ./connectors
COPY projections ./projections
COPY services ./services
COPY tooling ./tooling
COPY schemas ./schemas
COPY demo ./demo
# Exactly what uv.lock pins (hashes checked), into /opt/venv; uv itself pinned by hash.
ENV UV_PROJECT_ENVIRONMENT=/opt/venv UV_PYTHON_DOWNLOADS=never PATH=/opt/venv/bin:$PATH
RUN pip install --no-cache-dir --require-hashes --only-binary :all: --no-deps -r scripts/uv-requirements.txt \
    && uv sync --locked --no-cache --no-editable --extra postgres && pip uninstall -y -q uv && useradd --system --home /var/lib/sharehub sharehub \
    && mkdir -p /var/lib/sharehub && chown sharehub /var/lib/sharehub
USER sharehub
ENV SHAREHUB_HOME=/var/lib/sharehub
ENTRYPOINT ["sharehub"]
