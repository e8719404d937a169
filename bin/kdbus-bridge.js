#!/usr/bin/env node
'use strict';
// Start-up is mostly compiling and loading modules: where Node.js can keep
// compiled code between runs (22.1 and later), it does.
const { enableCompileCache } = require('module');
if (typeof enableCompileCache === 'function') enableCompileCache();
require('../dist/bridge/main.js');
