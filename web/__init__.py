"""The web layer under app.py and serve.py: the clinical report and cards
(clinic), the three languages' texts (app_text), the API's page (index.html,
static/)."""
