// A plain Kafka consumer (Apache Kafka's Java client, from the devstack's broker jars): reads
// `count` records of a topic from the start and prints each as one line - partition, offset,
// key, value and headers, every byte string in base64 - so a test can compare what a client
// that is not ours reads with what was sent. Run as a single-file source program:
//   java -cp '<kafka lib>/*' ReadBack.java <bootstrap> <topic> <count>
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Properties;

import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

public class ReadBack {
    private static String b64(byte[] bytes) {
        return bytes == null ? "-" : Base64.getEncoder().encodeToString(bytes);
    }

    public static void main(String[] args) {
        String bootstrap = args[0], topic = args[1];
        int count = Integer.parseInt(args[2]);
        Properties props = new Properties();
        props.put("bootstrap.servers", bootstrap);
        props.put("enable.auto.commit", "false");
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(
                props, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
            List<TopicPartition> partitions = new ArrayList<>();
            for (PartitionInfo p : consumer.partitionsFor(topic)) {
                partitions.add(new TopicPartition(topic, p.partition()));
            }
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
            int seen = 0;
            long deadline = System.currentTimeMillis() + 60_000;
            while (seen < count && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500))) {
                    StringBuilder line = new StringBuilder();
                    line.append(r.partition()).append(' ').append(r.offset()).append(' ')
                        .append(b64(r.key())).append(' ').append(b64(r.value()));
                    for (Header h : r.headers()) {
                        line.append(' ').append(h.key()).append('=').append(b64(h.value()));
                    }
                    System.out.println(line);
                    seen++;
                }
            }
        }
    }
}
