// "Scan the label" on the claim wizard's identifier step: reads the unit's QR label with the camera
// and fills the identifier fields and the claim code. The label holds the portal's link
// <origin>/claim/label/<payload>/, the payload being base64url JSON (vendors/labels.py):
// {"v": vendor slug, "m": model slug, "i": {field key: value}, "c": claim code}.
// The browser's BarcodeDetector decodes where it exists; elsewhere the vendored jsQR, loaded on demand.
// The button stops the camera too; a QR code linking to another site than this portal fills nothing.
(function () {
  "use strict";

  const box = document.querySelector("[data-scan]");
  if (!box || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    return;
  }
  const button = box.querySelector("[data-scan-start]");
  const video = box.querySelector("[data-scan-video]");
  const status = box.querySelector("[data-scan-status]");
  const startLabel = button.innerHTML;
  let stream = null;
  let scanning = null; // the scan in progress: a click on the button while there is one stops it

  // Shown only where a camera is there to scan with.
  navigator.mediaDevices.enumerateDevices().then(function (devices) {
    box.hidden = !devices.some(function (device) { return device.kind === "videoinput"; });
  });

  function say(text) {
    status.textContent = text;
  }

  function labelContent(text) {
    let url;
    try {
      url = new URL(text);
    } catch (error) {
      return null;
    }
    const match = url.pathname.match(/^\/claim\/label\/([A-Za-z0-9_-]+)\/$/);
    if (!match) {
      return null;
    }
    if (url.origin !== window.location.origin) {
      return { foreign: url.host };
    }
    try {
      const base64 = match[1].replace(/-/g, "+").replace(/_/g, "/");
      const binary = atob(base64 + "===".slice((base64.length + 3) % 4));
      const bytes = Uint8Array.from(binary, function (c) { return c.charCodeAt(0); });
      const content = JSON.parse(new TextDecoder().decode(bytes));
      return content && typeof content.i === "object" ? content : null;
    } catch (error) {
      return null;
    }
  }

  function loadScript(src) {
    return new Promise(function (resolve, reject) {
      const script = document.createElement("script");
      script.src = src;
      script.onload = resolve;
      script.onerror = reject;
      document.head.appendChild(script);
    });
  }

  async function makeDecoder() {
    if ("BarcodeDetector" in window) {
      const formats = await window.BarcodeDetector.getSupportedFormats();
      if (formats.includes("qr_code")) {
        const native = new window.BarcodeDetector({ formats: ["qr_code"] });
        return async function (source) {
          const codes = await native.detect(source);
          return codes.length ? codes[0].rawValue : null;
        };
      }
    }
    if (!window.jsQR) {
      await loadScript(box.dataset.decoderSrc);
    }
    const canvas = document.createElement("canvas");
    const context = canvas.getContext("2d", { willReadFrequently: true });
    return async function (source) {
      if (!source.videoWidth) {
        return null;
      }
      canvas.width = source.videoWidth;
      canvas.height = source.videoHeight;
      context.drawImage(source, 0, 0);
      const image = context.getImageData(0, 0, canvas.width, canvas.height);
      const code = window.jsQR(image.data, image.width, image.height);
      return code ? code.data : null;
    };
  }

  function stop() {
    scanning = null;
    if (stream) {
      stream.getTracks().forEach(function (track) { track.stop(); });
      stream = null;
    }
    video.srcObject = null;
    video.hidden = true;
    button.innerHTML = startLabel;
  }

  function fill(content) {
    if (content.v !== box.dataset.vendor || content.m !== box.dataset.model) {
      say("This label is of another model. Go back and choose the model printed on it, or scan its label from the phone's camera app.");
      return;
    }
    const values = Object.assign({}, content.i);
    if (content.c) {
      values.claim_code = content.c;
    }
    Object.keys(values).forEach(function (key) {
      const input = document.getElementsByName(box.dataset.prefix + key)[0];
      if (input) {
        input.value = values[key];
        input.classList.remove("is-invalid");
      }
    });
    say("Label read: the fields are filled in. Check them and click Next.");
  }

  async function scan() {
    const current = {};
    scanning = current;
    button.textContent = "Stop the camera";
    say("Point the camera at the QR code on the device's label.");
    let decode;
    let opened;
    try {
      decode = await makeDecoder();
      opened = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false });
    } catch (error) {
      if (scanning === current) {
        stop();
        say("The camera cannot be used here: allow the browser to use it, or type the values printed on the label.");
      }
      return;
    }
    if (scanning !== current) { // stopped while the browser was asking for the camera
      opened.getTracks().forEach(function (track) { track.stop(); });
      return;
    }
    stream = opened;
    video.srcObject = stream;
    video.hidden = false;
    try {
      await video.play();
    } catch (error) {
      if (scanning === current) {
        stop();
        say("The camera's picture cannot be shown here: type the values printed on the label.");
      }
      return;
    }
    while (scanning === current) {
      const text = await decode(video).catch(function () { return null; });
      const content = text && labelContent(text);
      if (content && scanning === current) {
        stop();
        if (content.foreign) {
          say("This QR code links to " + content.foreign + ", not to this portal: nothing was filled in. Scan the label of the device.");
        } else {
          fill(content);
        }
        return;
      }
      await new Promise(function (resolve) { setTimeout(resolve, 150); });
    }
  }

  button.addEventListener("click", function () {
    if (scanning) {
      stop();
      say("Camera stopped.");
    } else {
      scan();
    }
  });
})();
