// Progressive enhancement for the incident filters: the form is a plain GET that works
// without this script. With it, empty fields are left out of the URL (so the page's URL
// is the API's query string) and the results are swapped in without a full reload; the
// back button restores earlier filters.
(function () {
  "use strict";
  var form = document.querySelector("form[data-enhance]");
  var region = document.getElementById("results");
  if (!form || !region || !window.fetch || !window.history || !window.DOMParser) return;

  function queryOf(f) {
    var params = new URLSearchParams();
    new FormData(f).forEach(function (value, name) {
      if (typeof value === "string" && value.trim() !== "") params.append(name, value.trim());
    });
    var text = params.toString();
    return text ? "?" + text : "";
  }

  function load(url, push) {
    region.setAttribute("aria-busy", "true");
    return fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) { return response.text().then(function (body) { return [response, body]; }); })
      .then(function (pair) {
        var doc = new DOMParser().parseFromString(pair[1], "text/html");
        var fresh = doc.getElementById("results");
        if (!fresh) { window.location.assign(url); return; }
        region.replaceWith(fresh);
        region = fresh;
        var freshForm = doc.querySelector("form[data-enhance]");
        if (freshForm) syncForm(freshForm);
        document.title = doc.title;
        if (push) history.pushState({ kamiyo: true }, "", url);
      })
      .catch(function () { window.location.assign(url); })
      .finally(function () { region.removeAttribute("aria-busy"); });
  }

  function syncForm(source) {
    Array.prototype.forEach.call(source.elements, function (el) {
      if (!el.name) return;
      var target = form.elements.namedItem(el.name);
      if (target && "value" in target) target.value = el.value;
    });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    load(form.getAttribute("action") + queryOf(form), true);
  });
  // On the document: the results region is replaced by every load.
  document.addEventListener("click", function (event) {
    var link = event.target.closest ? event.target.closest("a[data-nav]") : null;
    if (!link || !region.contains(link) || event.metaKey || event.ctrlKey || event.shiftKey) return;
    event.preventDefault();
    load(link.getAttribute("href"), true);
  });
  window.addEventListener("popstate", function () {
    load(window.location.pathname + window.location.search, false);
  });
})();
