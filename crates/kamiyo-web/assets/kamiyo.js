// Progressive enhancement for the incident filters: the form is a plain GET that works
// without this script. With it, empty fields are left out of the URL (so the page's URL
// is the API's query string) and the results are swapped in without a full reload; the
// back button restores earlier filters.
(function () {
  "use strict";
  var form = document.querySelector("form[data-enhance]");
  var region = document.getElementById("results");
  if (!form || !region || !window.fetch || !window.history || !window.DOMParser || !window.AbortController) return;

  var pending = null;
  // The URL whose results are shown: a popstate to the same URL (a fragment link such
  // as the skip link) needs no load.
  var shown = window.location.pathname + window.location.search;
  history.replaceState({ kamiyo: true }, "", window.location.href);

  function queryOf(f) {
    var params = new URLSearchParams();
    new FormData(f).forEach(function (value, name) {
      if (typeof value === "string" && value.trim() !== "") params.append(name, value.trim());
    });
    var text = params.toString();
    return text ? "?" + text : "";
  }

  function load(url, push) {
    // A newer request wins: an older answer arriving late must not replace it.
    if (pending) pending.abort();
    var controller = new AbortController();
    pending = controller;
    region.setAttribute("aria-busy", "true");
    return fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" }, signal: controller.signal })
      .then(function (response) { return response.text(); })
      .then(function (body) {
        var doc = new DOMParser().parseFromString(body, "text/html");
        var fresh = doc.getElementById("results");
        var freshForm = doc.querySelector("form[data-enhance]");
        if (!fresh || !freshForm) { window.location.replace(url); return; }
        // The region itself stays (it is the live region screen readers listen to);
        // its content and the form's fields are the new page's. Keyboard focus stays
        // where it was: on the same field or button of the new form, or on the region
        // when a link inside it (a sort header, the next page) was followed.
        var active = document.activeElement;
        var inForm = active && form.contains(active);
        var key = inForm ? (active.id || active.getAttribute("name") || (active.type === "submit" ? "submit" : "")) : "";
        var inRegion = active && region.contains(active);
        region.replaceChildren.apply(region, Array.prototype.slice.call(fresh.childNodes));
        form.replaceChildren.apply(form, Array.prototype.slice.call(freshForm.childNodes));
        if (inForm) {
          var again = key === "submit" ? form.querySelector("[type=submit]")
            : (document.getElementById(key) || form.elements.namedItem(key));
          if (again && again.focus) again.focus();
        } else if (inRegion) {
          region.focus();
        }
        document.title = doc.title;
        shown = url;
        if (push) history.pushState({ kamiyo: true }, "", url);
      })
      .catch(function (error) {
        if (error && error.name === "AbortError") return;
        window.location.replace(url);
      })
      .finally(function () {
        if (pending === controller) {
          pending = null;
          region.removeAttribute("aria-busy");
        }
      });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    load(form.getAttribute("action") + queryOf(form), true);
  });
  // On the document: links inside the results region, which each load replaces.
  document.addEventListener("click", function (event) {
    var link = event.target.closest ? event.target.closest("a[data-nav]") : null;
    if (!link || !region.contains(link) || event.metaKey || event.ctrlKey || event.shiftKey) return;
    event.preventDefault();
    load(link.getAttribute("href"), true);
  });
  window.addEventListener("popstate", function () {
    var url = window.location.pathname + window.location.search;
    if (url !== shown) load(url, false);
  });
})();
