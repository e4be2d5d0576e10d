// linedesk: the API documentation page (/api/docs) — Swagger UI (swagger-ui-bundle.js,
// vendored) on the desk's own OpenAPI document. A file, not an inline script: the pages'
// Content-Security-Policy allows scripts from files only.
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  window.addEventListener("DOMContentLoaded", function () {
    var root = document.getElementById("swagger-ui");
    if (!root || !window.SwaggerUIBundle) {
      return;
    }
    window.SwaggerUIBundle({
      url: root.getAttribute("data-url"),
      domNode: root,
      deepLinking: true,
      // No call to swagger.io's online validator (the desk may run on a closed network).
      validatorUrl: null,
      // "Try it out" runs as the logged-in user (the session cookie); writes need the
      // session's CSRF token, as for every cookie-authenticated write.
      requestInterceptor: function (req) {
        if (req.method && req.method.toUpperCase() !== "GET") {
          req.headers["X-CSRF-Token"] = csrfToken();
        }
        return req;
      },
    });
  });
})();
