// The console's router (hash routes: #/operations, #/operations/ID, #/workflows) and its token field.

import { getToken, setToken } from "./api.js";
import { refreshAges } from "./format.js";
import { renderOperation } from "./operation.js";
import { renderOperations } from "./operations.js";
import { renderWorkflows } from "./workflows.js";

const main = document.getElementById("content");
let dispose = () => {};

function route() {
  dispose();
  const hash = location.hash.replace(/^#/, "") || "/operations";
  const [path, search = ""] = hash.split("?");
  const parts = path.split("/").filter(Boolean);
  let page = parts[0] || "operations";
  if (page === "operations" && parts.length > 1) {
    dispose = renderOperation(main, decodeURIComponent(parts.slice(1).join("/")));
    page = "operation";
  } else if (page === "workflows") {
    dispose = renderWorkflows(main);
  } else {
    dispose = renderOperations(main, new URLSearchParams(search));
    page = "operations";
  }
  document.body.dataset.page = page;
  for (const link of document.querySelectorAll("[data-nav]")) {
    const current = link.dataset.nav === page || (page === "operation" && link.dataset.nav === "operations");
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `${page === "workflows" ? "Workflows" : page === "operation" ? "Operation" : "Operations"} · pausable`;
}

const tokenForm = document.querySelector("[data-testid=token-form]");
const tokenInput = document.getElementById("token");
tokenInput.value = getToken();
tokenForm.addEventListener("submit", (event) => {
  event.preventDefault();
  setToken(tokenInput.value.trim());
  route(); // reload the page's data with the new token
});

window.addEventListener("hashchange", route);
setInterval(() => refreshAges(main), 5000);
route();
