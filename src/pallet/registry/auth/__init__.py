"""Who is asking, and may they: htpasswd Basic auth, Docker token auth (JWT ES256), ACLs."""
