# One image for the code location, the run pods and the Ray workers. The Ray base image matches the
# ray version pinned in pyproject.toml, so head, workers and clients speak the same protocol.
FROM rayproject/ray:2.60.0-py311

# The sandbox worker group runs model-written code in bubblewrap, under the system's own Python in /usr (the
# sandbox binds /usr read-only and nothing of the image's Python environment): both from the distribution.
USER root
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends bubblewrap python3-minimal \
 && rm -rf /var/lib/apt/lists/*
USER 1000

WORKDIR /opt/fleet-dagster
COPY --chown=ray:users pyproject.toml README.md ./
COPY --chown=ray:users fleet_dagster ./fleet_dagster
COPY --chown=ray:users resources ./resources
RUN pip install --no-cache-dir . \
 && pip check

# Role profiles and prompts: baked in, and overridable by the chart's ConfigMap at this path.
ENV FLEET_RESOURCES_DIR=/opt/fleet-dagster/resources \
    DAGSTER_HOME=/tmp/dagster \
    PYTHONUNBUFFERED=1
# The base image's user "ray" (uid 1000): the chart runs every pod as non-root with that uid.
USER 1000
EXPOSE 4000
CMD ["dagster", "code-server", "start", "--host", "0.0.0.0", "--port", "4000", "--module-name", "fleet_dagster.definitions"]
