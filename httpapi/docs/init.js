// Served from guichet itself: nothing is fetched from the internet.
window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#ui", deepLinking: true, persistAuthorization: false });
