"""The baseline: a bare FastAPI app with a pydantic POST body, served the same way."""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI()


class Body(BaseModel):
    """A body shaped like a forecast request."""

    tickers: list[str]


@app.post("/echo")
def echo(body: Body) -> dict[str, list[str]]:
    """Return the tickers: parsing and serialisation only."""
    return {"tickers": body.tickers}
