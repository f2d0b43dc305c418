# First draft; the operations work finishes it.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY requirements.lock .
RUN pip install --no-cache-dir --require-hashes -r requirements.lock
COPY . .
RUN useradd --system --uid 10001 roomcast && mkdir -p var && chown roomcast var
USER roomcast
ENV HOST=0.0.0.0 PORT=8080
EXPOSE 8080
HEALTHCHECK CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8080/health')"
CMD ["python", "run.py", "serve"]
