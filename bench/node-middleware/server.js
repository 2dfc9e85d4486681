// The Node.js middleware the Rust functions descend from, reduced to the authenticated read
// the benchmark compares: an Express auth middleware that verifies the HS256 token
// (jsonwebtoken), loads the user from Redis (ioredis, `GET user:v4:<email>`, the entry the Rust
// functions write: a header line, then the user's record, tab-separated, its JSON last), checks
// its id and jwtVersion, and `GET /users/me` answers the user.
// No DynamoDB fallback: the benchmark only sends hits. Prints `listening <port>` when ready.
const express = require("express");
const Redis = require("ioredis");
const jwt = require("jsonwebtoken");

const secret = process.env.JWT_SECRET;
const redis = new Redis(process.env.REDIS_URL);
const app = express();
app.disable("x-powered-by");
app.disable("etag");

async function authenticate(req, res, next) {
  try {
    const header = req.headers.authorization || "";
    const token = header.startsWith("Bearer ") ? header.slice(7) : req.headers.aid;
    const claims = jwt.verify(token, secret, {
      algorithms: ["HS256"],
      issuer: "Caching-Code-Login",
      audience: "Caching-Code-Auth",
    });
    const raw = await redis.get(`user:v4:${claims.email}`);
    const record = raw && raw.split("\n")[1];
    const fields = record ? record.split("\t") : [];
    const user = fields[2] === "L" ? JSON.parse(fields.slice(5).join("\t")) : null;
    if (!user || user.id !== claims.sub || user.jwtVersion !== claims.jwtVersion) {
      return res.status(401).json({ error: { code: "unauthorized", message: "unauthorized" } });
    }
    req.user = user;
    next();
  } catch (e) {
    res.status(401).json({ error: { code: "unauthorized", message: "unauthorized" } });
  }
}

app.get("/users/me", authenticate, (req, res) => {
  const { id, email, name, createdAt } = req.user;
  res.json({ id, email, name, createdAt });
});

const server = app.listen(0, "127.0.0.1", () => console.log(`listening ${server.address().port}`));
