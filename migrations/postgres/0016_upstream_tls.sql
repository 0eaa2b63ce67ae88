-- Per-product upstream TLS. upstream_tls names an upstream TLS profile: a directory under
-- the server's --upstream-tls-dir holding a CA bundle and/or a client certificate and
-- key. Only the name is stored; certificates and private keys stay in files. NULL: the
-- system's roots plus the server-wide --upstream-ca-file / --upstream-client-cert.
ALTER TABLE products ADD COLUMN upstream_tls TEXT;
