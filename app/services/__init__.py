"""Services between HTTP and the libraries: no FastAPI here, no HTTP status codes."""
