import express from "express";

export const version = process.env.APP_VERSION ?? "dev";

export function greeting(name?: string): string {
  return `hello, ${name || "world"}, from node-express ${version}\n`;
}

export function createApp(): express.Express {
  const app = express();
  app.get("/", (req, res) => {
    const name = typeof req.query.name === "string" ? req.query.name : undefined;
    res.type("text/plain").send(greeting(name));
  });
  app.get("/health", (_req, res) => {
    res.json({ status: "ok" });
  });
  return app;
}
