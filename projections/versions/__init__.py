"""The version lifecycle: catalog and ``ACTIVE``, following it, rebuild, digest, lanes, the promotion diff."""
