"""Security building blocks shared by the API, the worker and the tools around them.

- `keys`: the payload encryption keyring (configuration or a generated key file, never the repo);
- `codec`: the Temporal `PayloadCodec` that encrypts every payload with AES-256-GCM;
- `converter`: the `DataConverter` every Temporal client and worker must use;
- `ratelimit`: a sliding-window rate limiter in PostgreSQL, shared by every API process.

Nothing here imports FastAPI, so the worker can use it without pulling in the web stack.
"""
