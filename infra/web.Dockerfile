# The web image: the Django app (UI, API, live updates, Event Grid receiver, projector, relay)
# served by `magictoolbox run` on port 8000. The build context is the repository root, from a
# clean checkout (infra/README.md: `git archive` then `az acr build -f infra/web.Dockerfile`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
RUN useradd --system --uid 10001 --no-create-home --home-dir /app magictoolbox

# The dependencies first: a code change reuses this layer.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt

# Run from the source tree (an editable install): settings keep var/ beside the packages, and
# the templates and static files stay where Django's app loaders look for them.
COPY events events
COPY services services
COPY projections projections
COPY handlers handlers
COPY web web
RUN pip install --no-deps -e . && mkdir -p var && chown magictoolbox var

USER magictoolbox
EXPOSE 8000
# Migrates, then serves; the settings come from the Container App's environment.
CMD ["magictoolbox", "run", "--host", "0.0.0.0", "--port", "8000"]
