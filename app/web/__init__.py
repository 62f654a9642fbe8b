"""The analyst dashboard at ``/``: one page over the public REST API, assets served here."""
