// linedesk: the small glue every page needs (no framework: pages are server-rendered forms).
(function () {
  "use strict";

  // The session's CSRF token, from <meta name="csrf-token"> in templates/base.html.
  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  // Plain forms may ask before submitting: <form data-confirm="…">.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form && form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });

  // Read-only fields whose whole value a click selects: <input data-select-all> (no inline
  // handlers: the pages' Content-Security-Policy allows scripts from files only).
  document.addEventListener("click", function (event) {
    var el = event.target;
    if (el && el.matches && el.matches("input[data-select-all]")) {
      el.select();
    }
  });

  // For other scripts (fetch calls must send the token as X-CSRF-Token too).
  window.linedesk = { csrfToken: csrfToken };
})();
