# Roomcast's image: the runtime lock installed the way the Makefile installs it (the locked pip
# first, then every locked file hash-checked, nothing resolved against the index).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY requirements-pip.lock requirements.lock ./
RUN python -m pip install --no-cache-dir --no-deps --require-hashes -r requirements-pip.lock \
 && python -m pip install --no-cache-dir --no-deps --require-hashes -r requirements.lock \
 && python -m pip check
COPY . .
RUN useradd --system --uid 10001 roomcast && mkdir -p var && chown roomcast var
USER roomcast
ENV HOST=0.0.0.0 PORT=8080
EXPOSE 8080
HEALTHCHECK CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8080/health')"
CMD ["python", "run.py", "serve"]
