# The connector image, run by Airbyte as `<image> spec|check|discover|read ...`.
# Only setup.py, constraints.txt and the package are in the build context (see .dockerignore): no tests,
# simulator or benchmarks.
FROM python:3.11-slim

LABEL io.airbyte.name=airbyte/source-callvolume
# Must equal VERSION in setup.py and dockerImageTag in metadata.yaml (unit_tests/test_packaging.py checks it).
LABEL io.airbyte.version=0.2.0

# Airbyte's launcher reads AIRBYTE_ENTRYPOINT when it replaces the container's command with its own wrapper.
ENV AIRBYTE_ENTRYPOINT="source-callvolume"

WORKDIR /airbyte/integration_code
COPY setup.py constraints.txt ./
COPY source_callvolume ./source_callvolume
# The runtime dependencies only (no extras), at the versions constraints.txt pins, as in every .venv.
RUN pip install --no-cache-dir --disable-pip-version-check --constraint constraints.txt . \
    && useradd --system --uid 1000 --create-home --home-dir /home/airbyte airbyte

# The connector needs no privileges: it reads its config from a mounted file and makes HTTPS requests.
USER airbyte
WORKDIR /home/airbyte

ENTRYPOINT ["source-callvolume"]
