// ts-proto writes the schema of google/protobuf/descriptor.proto with edition numbers (1002) where
// its own types expect the Edition enum, which strict TypeScript rejects. That file is Google's
// descriptor, not our contract: it is exempted from type checking, nothing else is.
'use strict';
const fs = require('node:fs');
const file = require('node:path').join(__dirname, '..', '..', 'gen', 'google', 'protobuf', 'descriptor.ts');
const text = fs.readFileSync(file, 'utf8');
if (!text.startsWith('// @ts-nocheck')) fs.writeFileSync(file, `// @ts-nocheck\n${text}`);
