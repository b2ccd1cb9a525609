// Reads a mongo_results database the way MongoDB Compass does: the Node.js driver
// lists the collections and mongodb-schema (the library of Compass's Schema tab)
// analyses their documents. Prints, per results.* collection, each field path with
// the types Compass would show (array element types under "path[]").
// Usage: node compass_check.js URI DATABASE
const { MongoClient } = require('mongodb');
const { parseSchema } = require('mongodb-schema');

function walk(fields, out) {
  for (const field of fields) {
    const types = field.types.map((t) => t.bsonType || t.name).filter((n) => n !== 'Undefined');
    out[field.path.join('.')] = types;
    for (const type of field.types) {
      if (type.name === 'Document') walk(type.fields, out);
      if (type.name === 'Array') {
        out[field.path.join('.') + '[]'] = type.types.map((t) => t.bsonType || t.name);
        for (const inner of type.types) if (inner.name === 'Document') walk(inner.fields, out);
      }
    }
  }
  return out;
}

async function main() {
  const [uri, dbName] = process.argv.slice(2);
  const client = new MongoClient(uri, { serverSelectionTimeoutMS: 5000 });
  try {
    const db = client.db(dbName);
    const names = (await db.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name).sort();
    const report = { collections: names, schemas: {} };
    for (const name of names.filter((n) => n.startsWith('results.'))) {
      // Compass reads without promoting Int64 and Double to JS numbers, so their BSON types show.
      const schema = await parseSchema(db.collection(name).find({}, { promoteValues: false }));
      report.schemas[name] = { count: schema.count, fields: walk(schema.fields, {}) };
    }
    process.stdout.write(JSON.stringify(report) + '\n');
  } finally {
    await client.close();
  }
}

main().catch((err) => {
  process.stderr.write(`compass_check: ${err.message}\n`);
  process.exit(1);
});
