"""Bearer tokens for internal callers: the token file of salted scrypt hashes and its scopes
(`store`), the ASGI middleware that answers 401/403 before BentoML sees a request
(`middleware`), and `python -m pipelines.auth` to issue, list and revoke tokens (`cli`).

May import: http, observe.
"""
