"""Who may do what, and from where: API keys and their scopes (keys.py), which addresses are
safe to listen on and which Host names a loopback server answers (network.py), and the folders
the server may read and write (folders.py). No HTTP here: api/guard.py applies them to requests."""
