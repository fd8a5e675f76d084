/* Runs synchronously in <head>, before first paint: the theme chosen on this device wins over
   the profile's (no flash of the wrong theme), and `.js` lets CSS hide no-JS fallbacks. */
(function () {
  "use strict";
  var root = document.documentElement;
  root.classList.add("js");
  try {
    var theme = window.localStorage.getItem("webui-theme");
    if (theme === "system" || theme === "light" || theme === "dark") root.setAttribute("data-theme", theme);
  } catch (error) {
    /* storage disabled: keep the server's choice */
  }
})();
