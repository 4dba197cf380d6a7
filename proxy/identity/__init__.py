"""Who is connecting: the local issuer and OIDC token verification."""
