"""Authentication: passwords (argon2id), JWT access tokens (pyjwt), users, and the request middleware."""
