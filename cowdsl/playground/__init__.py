"""The browser playground: cowdsl in Pyodide on a static page (docs/playground/).

``build`` lays out the bundle (the page, Pyodide, the wheels, cowdsl, the
scenario menu), ``serve`` serves it on 127.0.0.1, ``web`` is what the page
calls in the browser, ``browser`` drives a headless Chromium over the DevTools
protocol (the tests and the screenshot)."""
