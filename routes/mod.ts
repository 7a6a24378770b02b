/** createApp(deps): the Hono app with every route, request ids and one error mapper. */
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import type { AppDeps } from "../lib/deps.ts";
import { AppError, errorBody, LimitError } from "../lib/errors.ts";
import { isTransient } from "../lib/kv_util.ts";
import { newId } from "../lib/ids.ts";
import { artifactRequestRoutes, artifactRoutes } from "./artifacts.ts";
import { chatRoutes } from "./chat.ts";
import { adminRoutes } from "./admin.ts";
import { healthRoutes } from "./health.ts";
import { jobRoutes } from "./jobs.ts";
import { metricsRoutes } from "./metrics.ts";
import { edge, trafficControl } from "./middleware.ts";
import { usageRoutes } from "./usage.ts";
import { repoRoutes } from "./repos.ts";
import { staticRoutes } from "./static.ts";

type Env = { Variables: { requestId: string } };

const SANE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Builds the app from its dependencies; main.ts and the tests both call this. */
export function createApp(deps: AppDeps) {
  const app = new Hono<Env>();

  app.use("*", async (c, next) => {
    const given = c.req.header("x-request-id");
    const requestId = given && SANE_REQUEST_ID.test(given) ? given : newId();
    c.set("requestId", requestId);
    await next();
    c.res.headers.set("X-Request-Id", requestId);
  });
  // a process shutting down answers 503 and waits for what it runs (lib/drain.ts); /health says so
  app.use("*", (c, next) => (c.req.path === "/health" ? next() : deps.drain.track(next)));
  // traffic control (routes/middleware.ts): headers, metrics and logs; CORS; who; limits and caps
  app.use("*", edge(deps));
  app.use("/api/*", trafficControl(deps));

  app.route("/health", healthRoutes(deps));
  app.route("/metrics", metricsRoutes(deps));
  app.route("/admin", adminRoutes(deps));
  app.route("/api/usage", usageRoutes(deps));
  app.route("/api/repos", repoRoutes(deps));
  app.route("/api/repos", artifactRequestRoutes(deps));
  app.route("/api/repos", chatRoutes(deps));
  app.route("/api/artifacts", artifactRoutes(deps));
  app.route("/api/jobs", jobRoutes(deps));
  const pages = staticRoutes();
  app.route("/", pages.routes);

  app.notFound((c) =>
    pages.notFound(c) ?? c.json(errorBody("not_found", "Nothing is served at that address."), 404)
  );

  app.onError((caught, c) => {
    const requestId = c.get("requestId");
    // A local KV file still locked after the retries: the service is busy, not broken.
    const err = isTransient(caught)
      ? new LimitError(503, "overloaded", "The service is busy right now; try again shortly.", 1)
      : caught;
    if (err instanceof AppError) {
      const res = c.json(errorBody(err.code, err.message, err.extra), err.status as 400);
      for (const [k, v] of Object.entries(err.headers)) res.headers.set(k, v);
      res.headers.set("X-Request-Id", requestId);
      return res;
    }
    if (err instanceof HTTPException && err.status < 500) {
      const res = c.json(
        errorBody("invalid_request", err.message || "The request is not valid."),
        err.status,
      );
      res.headers.set("X-Request-Id", requestId);
      return res;
    }
    deps.log.error("unhandled error", { requestId, path: c.req.path, error: err });
    const res = c.json(errorBody("internal", "Something went wrong on our side; it has been logged."), 500);
    res.headers.set("X-Request-Id", requestId);
    return res;
  });

  return app;
}
