# One image for the api, worker and relay processes (docker-compose.yml picks the command).
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY pyproject.toml README.md ./
COPY alembic.ini ./
COPY config ./config
COPY stack ./stack
COPY ledger ./ledger
COPY otp ./otp
COPY fx ./fx
COPY security ./security
COPY workflows ./workflows
COPY activities ./activities
COPY api ./api
COPY portal ./portal
COPY recon ./recon
COPY worker ./worker
COPY relay ./relay
COPY chaos ./chaos
COPY bench ./bench
RUN pip install --no-cache-dir .
EXPOSE 8000
CMD ["uvicorn", "api.app:app", "--host", "0.0.0.0", "--port", "8000"]
