# One image for the web server and the worker.
FROM python:3.11.7-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN useradd --create-home --uid 10001 app
WORKDIR /srv/app

COPY requirements.txt .
RUN pip install -r requirements.txt

COPY --chown=app:app app/ app/
COPY --chown=app:app worker/ worker/
COPY --chown=app:app static/ static/
COPY --chown=app:app migrations/ migrations/
COPY --chown=app:app config.py run.py ./
RUN mkdir -p instance && chown app:app instance

USER app
ENV FLASK_APP=app HOST=0.0.0.0 PORT=5000
EXPOSE 5000
CMD ["python", "run.py"]
