// Swagger UI over this server's own OpenAPI document (as OpenAPI 3.0, which this Swagger UI renders); a
// static file, so the page needs no inline script.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({ url: "/docs/openapi.json", dom_id: "#swagger-ui", deepLinking: true });
});
