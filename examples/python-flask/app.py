"""python-flask: a small Flask service served by gunicorn."""
import os

from flask import Flask, jsonify, request

app = Flask(__name__)
VERSION = os.environ.get("APP_VERSION", "dev")


@app.get("/")
def index():
    name = request.args.get("name", "world")
    return f"hello, {name}, from python-flask {VERSION}\n", 200, {"Content-Type": "text/plain; charset=utf-8"}


@app.get("/health")
def health():
    return jsonify(status="ok")


if __name__ == "__main__":
    app.run(host="0.0.0.0", port=8000)
