# One image for the web server and the worker.
FROM python:3.11.7-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN useradd --create-home --uid 10001 app
WORKDIR /srv/app

COPY requirements.txt .
# Its last line (-e .) installs the command-line client from the checkout; the image does not need it.
RUN grep -v '^-e ' requirements.txt > /tmp/requirements.txt && pip install -r /tmp/requirements.txt

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
