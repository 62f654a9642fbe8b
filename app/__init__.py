"""quantserve's application shell: the FastAPI service and the command line."""
