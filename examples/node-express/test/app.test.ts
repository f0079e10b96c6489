import { test } from "node:test";
import assert from "node:assert/strict";
import request from "supertest";
import { createApp, greeting } from "../src/app";

test("greeting names the caller", () => {
  assert.match(greeting("strata"), /^hello, strata, from node-express/);
  assert.match(greeting(), /^hello, world,/);
});

test("GET / answers with the greeting", async () => {
  const res = await request(createApp()).get("/?name=strata");
  assert.equal(res.status, 200);
  assert.match(res.text, /^hello, strata,/);
});

test("GET /health is ok", async () => {
  const res = await request(createApp()).get("/health");
  assert.equal(res.status, 200);
  assert.deepEqual(res.body, { status: "ok" });
});
