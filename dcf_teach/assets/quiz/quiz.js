/* dcf_teach study-and-quiz page: a jsPsych 8 timeline built from window.DCF_QUIZ (config.js, written by
   dcf_teach.study.quiz_page). Works from file:// with no server. URL parameters (all optional):
     group=unpaired|ours|baseline  the study group (else drawn at random and recorded as such)
     participant=ID                skip the ID question
     segment_s=60                  seconds per study segment
     budget=time|count             equal study time (default) or also an equal number of study images
     feedback=0|1                  show the right answer after each quiz image
     feedback_s=1.2                how long the answer stays
     seed=N                        the quiz order seed (else random; always recorded) */
(function () {
  'use strict';
  var C = window.DCF_QUIZ, Q = new URLSearchParams(window.location.search);
  if (!C || typeof initJsPsych !== 'function') {
    document.body.textContent = 'The quiz files are incomplete (config.js or js/jspsych.min.js is missing).';
    return;
  }
  function rand32() { var a = new Uint32Array(1); window.crypto.getRandomValues(a); return a[0]; }
  function mulberry32(a) {
    return function () {
      a |= 0; a = (a + 0x6D2B79F5) | 0;
      var t = Math.imul(a ^ (a >>> 15), 1 | a);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }
  function shuffled(xs, rng) {
    var a = xs.slice();
    for (var i = a.length - 1; i > 0; i--) { var j = Math.floor(rng() * (i + 1)); var t = a[i]; a[i] = a[j]; a[j] = t; }
    return a;
  }
  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c];
    });
  }
  function num(name, dflt) { var v = parseFloat(Q.get(name)); return isFinite(v) && v > 0 ? v : dflt; }

  var group = Q.get('group'), groupFrom = 'link';
  if (C.groups.indexOf(group) < 0) { group = C.groups[rand32() % C.groups.length]; groupFrom = 'random'; }
  var segMs = Math.round(1000 * num('segment_s', C.segment_s));
  var budget = ['time', 'count'].indexOf(Q.get('budget')) >= 0 ? Q.get('budget') : C.budget;
  var feedback = Q.has('feedback') ? Q.get('feedback') === '1' : C.feedback;
  var feedbackMs = Math.round(1000 * num('feedback_s', C.feedback_ms / 1000));
  var seed = /^\d{1,10}$/.test(Q.get('seed') || '') ? (parseInt(Q.get('seed'), 10) >>> 0) : rand32();
  var participant = (Q.get('participant') || '').trim().slice(0, 64);
  var A = C.classes[0], B = C.classes[1];
  var started = new Date().toISOString();

  // ---- study material of the group -------------------------------------------------------------------------
  function card(im) {
    return '<figure class="dcf-card"><img src="' + esc(im.file) + '" alt="' + esc(im.label) + '"><figcaption>' +
      esc(im.label) + '</figcaption></figure>';
  }
  function flipCard(f) {
    return '<figure class="dcf-card dcf-flip"><div class="dcf-stack"><img src="' + esc(f.original) + '" alt="' +
      esc(f.source) + '"><img class="dcf-b" src="' + esc(f.counterfactual) + '" alt="' + esc(f.target) +
      '"></div><figcaption><span class="dcf-a">' + esc(f.source) + '</span><span class="dcf-b">' + esc(f.target) +
      '</span></figcaption></figure>';
  }
  var timer = null;
  function segment(name, title, note, cards, ms) {
    return {
      type: jsPsychHtmlKeyboardResponse, choices: 'NO_KEYS', trial_duration: ms, response_ends_trial: false,
      stimulus: '<div class="dcf-seg" data-segment="' + esc(name) + '"><h2>' + esc(title) + '</h2><p class="dcf-note">' +
        esc(note) + ' <span class="dcf-timer">Time left: <b id="dcf-left"></b> s</span></p><div class="dcf-grid">' +
        cards.join('') + '</div></div>',
      data: { phase: 'study', segment: name, n_images: cards.length },
      on_load: function () {
        var t0 = performance.now(), el = document.getElementById('dcf-left');
        var tick = function () { el.textContent = Math.max(0, Math.ceil((ms - (performance.now() - t0)) / 1000)); };
        tick(); timer = setInterval(tick, 250);
      },
      on_finish: function () { clearInterval(timer); }
    };
  }
  var flips = group === 'baseline' ? C.baseline.flips : C.flips;
  var ab = flips.filter(function (f) { return f.source === A; }), ba = flips.filter(function (f) { return f.source === B; });
  var realImages = C.examples.concat(C.flips.map(function (f) { return { file: f.original, label: f.source }; }), C.extra);
  var segments = [], studyImages = [];
  if (group === 'unpaired') {
    var shown = realImages;
    if (budget === 'count') shown = realImages.slice(0, C.examples.length + 2 * C.flips.length);
    shown = shuffled(shown, mulberry32(seed ^ 0x5eed));
    segments.push(segment('unpaired', 'Labelled images of ' + A + ' and ' + B,
      'Study these labelled images: what makes an image ' + A + ' or ' + B + '?', shown.map(card), 3 * segMs));
    studyImages = shown.map(function (im) { return im.file; });
  } else {
    // the same words for both paired groups: participants are not told which method made their images
    segments.push(segment('examples', 'Labelled images of ' + A + ' and ' + B,
      'Study these labelled images: what makes an image ' + A + ' or ' + B + '?', C.examples.map(card), segMs));
    segments.push(segment(A + '->' + B, A + ' → ' + B, 'Each image alternates between a ' + A + ' image and the same image changed to look like ' +
      B + '. Look for what changes.', ab.map(flipCard), segMs));
    segments.push(segment(B + '->' + A, B + ' → ' + A, 'Each image alternates between a ' + B + ' image and the same image changed to look like ' +
      A + '. Look for what changes.', ba.map(flipCard), segMs));
    studyImages = C.examples.map(function (im) { return im.file; }).concat(
      [].concat.apply([], flips.map(function (f) { return [f.original, f.counterfactual]; })));
  }
  var quiz = shuffled(C.quiz, mulberry32(seed));

  // ---- the timeline ----------------------------------------------------------------------------------------
  var jsPsych = initJsPsych({ on_finish: finish });
  var timeline = [];
  if (!participant) {
    timeline.push({
      type: jsPsychSurveyText, button_label: 'Continue',
      preamble: '<h1>' + esc(C.title) + '</h1><p>You will study images of two classes, ' + esc(A) + ' and ' + esc(B) +
        ', then label ' + quiz.length + ' new images.</p>',
      questions: [{ prompt: 'Your name or participant ID (leave empty for a random one)', name: 'participant' }],
      data: { phase: 'id' },
      on_finish: function (d) { participant = String((d.response || {}).participant || '').trim().slice(0, 64); }
    });
  }
  var total = Math.round(3 * segMs / 1000);
  timeline.push({
    type: jsPsychHtmlButtonResponse, choices: ['Start'], data: { phase: 'instructions' },
    stimulus: '<div class="dcf-intro"><h1>' + esc(C.title) + '</h1><p>First you will <b>study</b> images for ' + total +
      ' seconds' + (group === 'unpaired' ? '' : ', in three parts (labelled images, then ' + esc(A) + ' → ' + esc(B) +
      ' changes, then ' + esc(B) + ' → ' + esc(A) + ' changes)') + '. The page moves on by itself.</p><p>Then you will ' +
      'see <b>' + quiz.length + ' new images</b>, one at a time: click ' + esc(A) + ' or ' + esc(B) + ' for each.' +
      (feedback ? ' After each answer you will see whether it was right.' : '') + '</p></div>'
  });
  timeline.push({
    type: jsPsychPreload, show_progress_bar: true, message: 'Loading the images…', data: { phase: 'preload' },
    images: studyImages.concat(quiz.map(function (q) { return q.file; }))
  });
  timeline = timeline.concat(segments);
  timeline.push({
    type: jsPsychHtmlButtonResponse, choices: ['Start the quiz'], data: { phase: 'instructions' },
    stimulus: '<div class="dcf-intro"><h2>Quiz</h2><p>Now label ' + quiz.length + ' new images. Click the class you think ' +
      'each one is. There is no time limit, but go with your first impression.</p></div>'
  });
  quiz.forEach(function (q, k) {
    timeline.push({
      type: jsPsychImageButtonResponse, stimulus: q.file, choices: C.classes, render_on_canvas: false,
      stimulus_height: C.display_px, maintain_aspect_ratio: true,
      prompt: '<p class="dcf-progress" data-k="' + k + '">Image ' + (k + 1) + ' of ' + quiz.length + ': which class is it?</p>',
      data: { phase: 'quiz', quiz_id: q.id, truth: q.label, quiz_index: k },
      on_finish: function (d) {
        d.answer = d.response === null || d.response === undefined ? '' : C.classes[d.response];
        d.correct = d.answer === d.truth;
      }
    });
    if (feedback) {
      timeline.push({
        type: jsPsychHtmlKeyboardResponse, choices: 'NO_KEYS', trial_duration: feedbackMs, data: { phase: 'feedback' },
        stimulus: function () {
          var d = jsPsych.data.get().filter({ phase: 'quiz' }).last(1).values()[0];
          return '<div class="dcf-feedback ' + (d.correct ? 'ok' : 'wrong') + '">' + (d.correct ? 'Correct: ' : 'Wrong: it is ') +
            '<b>' + esc(d.truth) + '</b></div>';
        }
      });
    }
  });

  // ---- the files -------------------------------------------------------------------------------------------
  function rows() {
    return jsPsych.data.get().filter({ phase: 'quiz' }).values().map(function (d) {
      return {
        participant: participant, group: group, stimulus: d.quiz_id, truth: d.truth, answer: d.answer,
        correct: d.correct, rt_ms: d.rt === null || d.rt === undefined ? null : Math.round(d.rt),
        elapsed_ms: d.time_elapsed, trial_index: d.quiz_index, seed: String(seed), deck_hash: C.deck_hash,
        criterion: group === 'baseline' ? C.baseline.criterion : C.criterion
      };
    });
  }
  function csvText(rs) {
    var cell = function (v) {
      var s = v === null || v === undefined ? '' : String(v);
      return /[",\r\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
    };
    return [C.fields.join(',')].concat(rs.map(function (r) {
      return C.fields.map(function (k) { return cell(r[k]); }).join(',');
    })).join('\r\n') + '\r\n';
  }
  function link(id, text, name, body, type) {
    var url = URL.createObjectURL(new Blob([body], { type: type }));
    return '<a class="dcf-download" id="' + id + '" href="' + url + '" download="' + esc(name) + '">' + esc(text) + '</a>';
  }
  function finish() {
    if (!participant) participant = 'p-' + rand32().toString(16);
    var rs = rows(), right = rs.filter(function (r) { return r.correct; }).length;
    var study = jsPsych.data.get().filter({ phase: 'study' }).values().map(function (d) {
      return { segment: d.segment, n_images: d.n_images, ms: d.time_elapsed };
    });
    var meta = {
      participant: participant, group: group, group_from: groupFrom, seed: String(seed), budget: budget,
      segment_s: segMs / 1000, feedback: feedback, deck_hash: C.deck_hash, criterion: C.criterion, dataset: C.dataset,
      baseline: C.baseline ? C.baseline.name : null,
      classes: C.classes, quiz_ids: quiz.map(function (q) { return q.id; }), study: study, started: started,
      finished: new Date().toISOString(), user_agent: navigator.userAgent, page: C.page_version
    };
    var csv = csvText(rs), json = JSON.stringify({ format: 'dcf_teach-quiz/1', meta: meta, trials: rs }, null, 1) + '\n';
    var stem = (participant.replace(/[^A-Za-z0-9_-]+/g, '_') || 'participant') + '_' + group;
    window.DCF_RESULT = { csv: csv, json: json, meta: meta };
    var el = jsPsych.getDisplayElement();
    el.innerHTML = '<div class="dcf-intro dcf-end"><h2>Thank you!</h2>' +
      (C.show_score ? '<p class="dcf-score">You labelled <b>' + right + ' of ' + rs.length + '</b> images correctly.</p>' : '') +
      '<p>Please download both files and send them to ' + esc(C.send_to || 'your teacher') + ':</p><p>' +
      link('dcf-csv', 'Download ' + stem + '.csv', stem + '.csv', csv, 'text/csv') + ' ' +
      link('dcf-json', 'Download ' + stem + '.json', stem + '.json', json, 'application/json') + '</p>' +
      '<pre id="dcf-data" hidden>' + esc(csv) + '</pre></div>';
  }
  jsPsych.run(timeline);
})();
