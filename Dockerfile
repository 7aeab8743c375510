# The sharehub image: one image, three roles (governance bootstrap, projection worker, query API).
FROM python:3.11-slim
WORKDIR /opt/sharehub
COPY pyproject.toml README.md ./
COPY sharehub ./sharehub
COPY connectors ./connectors
COPY projections ./projections
COPY services ./services
COPY schemas ./schemas
COPY demo ./demo
RUN pip install --no-cache-dir '.[postgres]' && useradd --system --home /var/lib/sharehub sharehub \
    && mkdir -p /var/lib/sharehub && chown sharehub /var/lib/sharehub
USER sharehub
ENV SHAREHUB_HOME=/var/lib/sharehub
ENTRYPOINT ["sharehub"]
