"""Second factors of both realms: TOTP (RFC 6238, with pyotp) and single-use recovery codes.

`mfa.codes` is pure (secrets, URIs, matching a code to its time step, recovery codes and their
hashes); `mfa.store` keeps enrolments in PostgreSQL: the TOTP secret sealed
(security/sealed.py), the last accepted time step per principal, recovery codes hashed.
"""
