// statusflow's API docs page: Swagger UI on /api/openapi.json. The page itself needs no
// token; the document and the calls "Try it out" makes do when the server has tokens, so
// the token given above is sent with each of them (kept for this tab only).
(function () {
  "use strict";
  var KEY = "statusflow.api-token";
  var form = document.getElementById("token-form");
  var input = document.getElementById("token");
  var state = document.getElementById("token-state");

  function token() {
    return window.sessionStorage.getItem(KEY) || "";
  }

  function start() {
    var ui = window.SwaggerUIBundle({
      url: "/api/openapi.json",
      dom_id: "#swagger-ui",
      deepLinking: true,
      validatorUrl: null, // no badge from an outside validator: nothing loads from elsewhere
      requestInterceptor: function (request) {
        var given = token();
        if (given && !request.headers.Authorization) {
          request.headers.Authorization = "Bearer " + given;
        }
        return request;
      },
      onComplete: function () {
        if (token()) {
          ui.preauthorizeApiKey("bearer", token());
        }
      },
      responseInterceptor: function (response) {
        if (response.status === 401 && /\/api\/openapi\.json$/.test(response.url)) {
          state.textContent = "This server needs a token: give one above.";
        }
        return response;
      },
    });
    window.ui = ui;
  }

  form.addEventListener("submit", function (submitted) {
    submitted.preventDefault();
    window.sessionStorage.setItem(KEY, input.value.trim());
    input.value = "";
    state.textContent = token() ? "Token set for this tab." : "Token cleared.";
    start();
  });
  state.textContent = token() ? "Token set for this tab." : "";
  start();
})();
