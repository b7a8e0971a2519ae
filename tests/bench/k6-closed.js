// k6 closed-model scenario for tests/bench/compare.py: N VUs (default 50)
// each loop one GET against the target for DUR (default 10s).
// Run by the harness as:
//   k6 run --quiet --no-usage-report --summary-export FILE \
//     -e URL=http://127.0.0.1:PORT/ -e DUR=10s -e VUS=50 k6-closed.js
import http from "k6/http";

export const options = {
  discardResponseBodies: true,
  summaryTrendStats: ["avg", "p(50)", "p(99)", "max"],
  scenarios: {
    closed: {
      executor: "constant-vus",
      vus: parseInt(__ENV.VUS || "50", 10),
      duration: __ENV.DUR || "10s",
      gracefulStop: "2s",
    },
  },
};

export default function () {
  http.get(__ENV.URL);
}
